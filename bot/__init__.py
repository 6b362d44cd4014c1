"""madoguchi core: the channel-agnostic conversation engine, storage and configuration."""
