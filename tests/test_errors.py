"""pmrs.errors: one root, a gRPC status per class, the old names importable where they were."""

import importlib

import grpc
import pytest

import pmrs
from pmrs import errors

#: Where each error was defined before pmrs.errors, and the built-in base it keeps.
OLD_HOMES = [("pmrs.serving.recommend", "InvalidArgument", ValueError),
             ("pmrs.serving.recommend", "NotFound", LookupError),
             ("pmrs.serving.recommend", "ServingError", Exception), ("pmrs.live.state", "AlreadyExists", ValueError),
             ("pmrs.live.log", "LogUnavailable", RuntimeError), ("pmrs.recommender", "ReadOnly", Exception),
             ("pmrs.ingest.errors", "IngestError", ValueError), ("pmrs.ingest", "IngestError", ValueError),
             ("pmrs.serving.contract", "ContractError", ValueError), ("pmrs.audio.decode", "AudioError", ValueError),
             ("pmrs.live.songs", "ClipRejected", ValueError), ("pmrs.live.songs", "ClipTooLarge", ValueError)]


def _classes():
    return [getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)]


def test_every_error_is_a_pmrs_error_with_a_grpc_status():
    assert len(_classes()) >= 14
    for cls in _classes():
        assert issubclass(cls, pmrs.PMRSError), cls
        assert cls.code in grpc.StatusCode.__members__, cls
        assert getattr(pmrs, cls.__name__) is cls   # exported from pmrs


@pytest.mark.parametrize("module, name, base", OLD_HOMES, ids=lambda v: v if isinstance(v, str) else None)
def test_the_old_names_import_from_their_old_modules_and_keep_their_base(module, name, base):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, pmrs.PMRSError) and issubclass(cls, base)
    if name != "ServingError":
        args = ("reason", "detail") if name == "AudioError" else ("message",)
        assert cls(*args).code in grpc.StatusCode.__members__


def test_codes_the_server_answers_with():
    from pmrs.live.songs import ClipRejected, ClipTooLarge

    assert pmrs.NotFound.code == "NOT_FOUND" and pmrs.InvalidArgument.code == "INVALID_ARGUMENT"
    assert pmrs.AlreadyExists.code == "ALREADY_EXISTS" and issubclass(pmrs.AlreadyExists, pmrs.InvalidArgument)
    assert ClipRejected.code == "INVALID_ARGUMENT"
    assert ClipTooLarge.code == "RESOURCE_EXHAUSTED" and issubclass(ClipTooLarge, pmrs.ResourceExhausted)
    assert pmrs.ReadOnly.code == "FAILED_PRECONDITION"
    assert pmrs.LogUnavailable.code == "UNAVAILABLE" and issubclass(pmrs.LogUnavailable, pmrs.Unavailable)


@pytest.mark.parametrize("code", [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_a_status_comes_back_as_the_class_that_names_it(code):
    exc = errors.from_status(code, "the server's words")
    assert isinstance(exc, pmrs.PMRSError) and exc.code == code
    assert str(exc) == exc.message == "the server's words"
    named = [cls for cls in _classes() if cls.code == code]
    if named:   # the one the server raises for it (FAILED_PRECONDITION: ReadOnly, not ContractError)
        assert type(exc) in named
    else:       # INTERNAL, CANCELLED, ...: the root, carrying the name
        assert type(exc) is pmrs.PMRSError


def test_audio_errors_keep_reason_and_detail_across_processes():
    import pickle

    exc = pickle.loads(pickle.dumps(pmrs.AudioError("silent", "all zeros")))
    assert (exc.reason, exc.detail, str(exc)) == ("silent", "all zeros", "silent: all zeros")
    assert exc.code == "INVALID_ARGUMENT"
