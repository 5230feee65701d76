"""One module per architecture, shared blocks, the registry and complexity counting."""
