"""Model families: pure maths, no data loading, file I/O or plotting."""
