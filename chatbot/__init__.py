"""Support Chatbot: service layer, dialogue manager, generation, storage of conversations, CLI."""
