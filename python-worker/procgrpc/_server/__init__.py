"""Server construction (registration recording, health, reflection) and the serving lifecycle."""
