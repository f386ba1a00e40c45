"""Development and research; never imported by the plugin and never in its zip."""
