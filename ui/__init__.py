"""Web UI: Gradio pages and HTTP routes on one FastAPI app."""
