"""One module per public dataset; each turns source files into Records."""
