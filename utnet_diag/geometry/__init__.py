"""Hand geometry on arrays: joint-order identification, projection fits, Procrustes, MANO conventions.

Pure numpy (and torch only where the MANO layer runs); no printing, no CLI.
"""
