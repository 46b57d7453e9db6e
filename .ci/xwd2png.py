# xwd2png.py XWD PNG — Xvfb -fbdir screen file (32-bit BGRX XWD) to PNG; no PIL needed.
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
h = struct.unpack('>25I', data[:100])
header_size, version, fmt, depth, width, height = h[0], h[1], h[2], h[3], h[4], h[5]
bpp, bpl, ncolors = h[11], h[12], h[19]
off = header_size + ncolors * 12
rows = []
for y in range(height):
    row = bytearray(b'\0')
    line = data[off + y * bpl: off + y * bpl + width * (bpp // 8)]
    for x in range(width):
        px = line[x * 4: x * 4 + 4]  # little-endian BGRX
        row += bytes((px[2], px[1], px[0]))
    rows.append(bytes(row))
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(b''.join(rows), 6)) + chunk(b'IEND', b'')
open(sys.argv[2], 'wb').write(png)
print(width, height, bpp, bpl)
