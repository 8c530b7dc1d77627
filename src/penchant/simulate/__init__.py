"""User simulators for conversational recommendation."""
