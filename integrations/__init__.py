"""Channel adapters (one module per platform) and the FastAPI app that mounts them."""
