"""Model backends: embeddings (and later generation), all local or on the organisation's own servers."""
