"""Writers: the only code that touches the output folder. Everything is written to a temporary name first."""
