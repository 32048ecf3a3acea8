"""SjogrenUS logic without Qt: buccal mucosa thickness and echogenicity, salivary gland
grades and the 0-16 / 0-18 ultrasound scores of primary Sjogren's syndrome."""
