"""U-Net (Ronneberger et al., 2015): a contracting path, an expanding path, and skips between them.

Each level of the encoder is two 3×3 conv-BN-ReLU layers then a 2×2 max-pool; the decoder
upsamples with a 2×2 transposed convolution, concatenates the encoder's map of the same size
(the skip: fine detail the bottleneck lost), and applies two more 3×3 layers. A final 1×1 conv
gives ``out_channels`` maps at the input resolution. Sizes need not be powers of two: an
upsampled map is padded to its skip's size.
"""
from __future__ import annotations

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, out_channels: int = 1, base_channels: int = 16, depth: int = 3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet: depth must be at least 1, got {depth}")
        widths = [base_channels * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList([DoubleConv(widths[i], widths[i + 1]) for i in range(depth)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                  for i in reversed(range(depth))])
        self.up_convs = nn.ModuleList([DoubleConv(2 * widths[i], widths[i]) for i in reversed(range(depth))])
        self.pool = nn.MaxPool2d(2)
        self.outc = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        x = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            skip = skips.pop()
            x = up(x)
            dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
            if dh or dw:  # odd sizes: pad the upsampled map to the skip's size
                x = F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            x = conv(tn.cat([skip, x], 1))
        return self.outc(x)
