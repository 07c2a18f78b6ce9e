"""Sample stamp images for development: drawn by code at ``kyso dev init``, never committed."""

from kyso.dev.assets.images import draw_seal, draw_signature, write_sample_images

__all__ = ["draw_seal", "draw_signature", "write_sample_images"]
