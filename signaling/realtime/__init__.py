"""callbridge package."""
