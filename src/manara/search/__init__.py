"""Documents, chunking, indexing, hybrid retrieval, cited answers and their evaluation."""
