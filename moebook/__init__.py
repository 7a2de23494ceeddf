"""moebook: execute (papermill) -> check (nbval) -> build (Jupyter Book 1) the companion book."""
