"""What the blend reads is one declared interface (``pmrs.serving.view.SongSpace``): the bundle
answers all of it, and each wrapper either answers a member itself or names it as the bundle's."""

import pytest

from pmrs.live.view import LiveView
from pmrs.serving.bundle import Bundle
from pmrs.serving.default_lists import _Prefetched
from pmrs.serving.view import MEMBERS, Forwarding


def test_the_bundle_answers_every_member():
    missing = [m for m in MEMBERS if not hasattr(Bundle, m)]
    # instance attributes set in Bundle.__init__ (read from the manifest)
    assert set(missing) <= {"version", "sources", "defaults", "genres", "genre_warning",
                            "acoustic_warning"}
    init = Bundle.__init__.__code__.co_names
    assert all(m in init for m in missing), missing


@pytest.mark.parametrize("wrapper", [LiveView, _Prefetched])
def test_every_member_is_a_decision_of_each_wrapper(wrapper):
    own = {m for m in MEMBERS if m in vars(wrapper)}
    left = set(wrapper.BUNDLE_OWN)
    assert own | left == set(MEMBERS), sorted(set(MEMBERS) - own - left)
    assert not own & left, sorted(own & left)   # answered and declared the bundle's: one or the other


def test_a_wrapper_reaches_nothing_beyond_the_interface():
    class Inner:
        secret = "not in the interface"

        def search(self, name, queries, top):
            return "searched"

    w = Forwarding(Inner())
    assert w.search("a", None, 1) == "searched"
    with pytest.raises(AttributeError):
        w.secret   # noqa: B018  (a Bundle method outside SongSpace is not forwarded)
