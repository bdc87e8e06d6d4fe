//! Client-to-server masking (RFC 6455 §5.3), eight bytes at a time.

/// XORs `buf` with `mask`, where `buf[0]` is payload byte number `offset`.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let rotated: [u8; 8] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let word = u64::from_ne_bytes(rotated);
    // 64 bytes per iteration, the inner loop unrolled: in the sandbox each
    // loop iteration also pays the watchdog's epoch check.
    let mut blocks = buf.chunks_exact_mut(64);
    for block in &mut blocks {
        for chunk in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
    }
    let mut chunks = blocks.into_remainder().chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= rotated[i];
    }
}

/// Appends `src` unmasked to `dst`; `src[0]` is payload byte number `offset`.
pub fn unmask_into(dst: &mut Vec<u8>, src: &[u8], mask: [u8; 4], offset: usize) {
    // Copying, then unmasking in place, measured faster in the sandbox than
    // zeroing the room and XORing from the source into it (one pass fewer
    // on paper, 1–5% slower at 64 KiB).
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], mask, offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_bytewise_definition_at_every_offset_and_length() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..200u8).collect();
        for offset in 0..8 {
            for len in 0..data.len() {
                let mut got = data[..len].to_vec();
                apply_mask(&mut got, mask, offset);
                let want: Vec<u8> = data[..len].iter().enumerate().map(|(i, b)| b ^ mask[(offset + i) % 4]).collect();
                assert_eq!(got, want, "offset {offset} len {len}");
                let mut appended = vec![9u8; 3];
                unmask_into(&mut appended, &data[..len], mask, offset);
                assert_eq!(appended[..3], [9, 9, 9]);
                assert_eq!(appended[3..], want, "unmask_into: offset {offset} len {len}");
            }
        }
    }
}
