"""Generated gRPC code for proto/pmrs/v1/recommender.proto (never edited by hand; `make proto`)."""
