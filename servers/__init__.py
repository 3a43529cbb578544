"""The interface servers: one subpackage per protocol, each a thin I/O driver around pure translation code."""
