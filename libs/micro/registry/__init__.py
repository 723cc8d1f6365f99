"""Service registration and discovery."""
