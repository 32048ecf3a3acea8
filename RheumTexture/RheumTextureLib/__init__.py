"""RheumTexture logic without Qt: metacarpal contours, distal-third ROIs and the
Deep-TEN texture score of rheumatoid arthritis on hand radiographs."""
