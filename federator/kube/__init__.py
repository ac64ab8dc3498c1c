"""The only code that speaks HTTP to apiservers: clients, list+watch, server-side apply."""
