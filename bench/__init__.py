"""Switchroom's benchmarks: ``python -m bench`` runs the side-by-side suite (see __main__.py);
the other modules here are focused benchmarks of one part each."""
