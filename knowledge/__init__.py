"""Knowledge base: entries with revisions, import/export, embeddings, FAISS index, retrieval.

Imports neither chatbot nor ui.
"""
