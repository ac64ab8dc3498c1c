"""Pure logic of federator: no I/O, no asyncio, no imports from the rest of the project."""
