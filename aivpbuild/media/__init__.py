"""Media code (PyAV, Pillow, numpy): rendering, probing, frames, assembly.

Only version constants live here, so the engine can key targets without importing PyAV.
"""

#: Bump whenever the local renderer's output bytes change: part of every local clip's key.
RENDERER_VERSION = "5"
