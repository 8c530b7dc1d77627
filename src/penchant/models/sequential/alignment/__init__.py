"""Preference optimisation of a trained next-item model: its next-item distribution is a policy
over the catalogue, fine-tuned on (history, preferred item, rejected item) triples."""
