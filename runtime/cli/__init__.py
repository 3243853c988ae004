"""The runtime's commands (``ernet-infer``, ``ernet-analyze``, ``ernet-validate``), thin
Typer apps over the API, and the error and exit-code policy every command follows."""
