"""FAQ: question answering from the knowledge base (the chat side of `knowledge/`)."""
