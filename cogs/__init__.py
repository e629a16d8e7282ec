"""discord.py extensions, one per feature. Each is a thin layer over bot.commands."""
