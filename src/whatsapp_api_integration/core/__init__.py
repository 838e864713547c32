"""The pure core: bytes and headers in, typed events out; bot responses in, request bodies out.

Nothing here imports from the web, the store or the network (tests/test_core_purity.py
enforces it), so a DRF view, a Rasa action or a script can reuse it anywhere.
"""
