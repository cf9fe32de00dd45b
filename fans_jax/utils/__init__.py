"""Small helpers shared by the training and sampling code."""
