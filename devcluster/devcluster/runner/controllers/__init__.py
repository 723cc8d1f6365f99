"""Controllers of the one-node cluster, each a client of the API."""
