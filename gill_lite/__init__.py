"""gill-lite: GILL (Koh, Fried, Salakhutdinov 2023), small enough to read, real enough to reproduce."""
__version__ = "0.1.0"
