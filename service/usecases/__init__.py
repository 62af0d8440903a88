"""What the subjects do: entity CRUD, login, health, admin work."""
