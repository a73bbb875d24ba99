"""The API face: what the daemon serves over HTTP (metrics in `hakeeper.api.metrics`)."""
