"""Scripts that generate the small fixtures the tests need every time."""
