//! Misbehaviour on demand, for the host's sandbox tests only (the `faults`
//! feature; never in the shipped component).

/// Spins, allocates without bound or traps when `message` asks for it.
pub fn inject(message: &[u8]) {
    match message {
        b"__wsbox_fault:loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        b"__wsbox_fault:alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 * 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        b"__wsbox_fault:trap" => panic!("fault injected: trap"),
        _ => {}
    }
}
