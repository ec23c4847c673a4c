"""Product search: an embedded vector store, an atomically published index, an HTTP service and a page."""
