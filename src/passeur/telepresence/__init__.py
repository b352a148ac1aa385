"""Telepresence: the one web server (aiohttp + aiortc), sessions and codes, video, teleop."""
