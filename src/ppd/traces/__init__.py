"""Production request traces (Mooncake, Azure): readers, conversation links, prompts, replay slices."""
