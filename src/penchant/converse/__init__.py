"""Conversational recommendation: ask the question that narrows a user's taste down fastest."""
