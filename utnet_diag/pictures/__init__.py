"""Pictures of a batch and its predictions (Pillow): :mod:`.draw` draws, :mod:`.overlay` makes
the ``--overlay`` contact sheet."""
