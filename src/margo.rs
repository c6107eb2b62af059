//! Margo's RPC ids, as pure functions: the Mochi layer between Mercury and Thallium names an RPC
//! by a 64-bit id made of a hash of its registered name and the id of the provider it targets.
//! Both the Mercury layer (to register RPCs a Margo service can call) and the Mofka wire codec
//! use them; neither depends on the other.

/// The parent id Margo writes in requests sent from outside any RPC handler.
pub const NO_PARENT_RPC_ID: u64 = 0xffff;

/// Mercury's success code (`HG_SUCCESS`).
pub const HG_SUCCESS: i32 = 0;

/// The provider id Margo uses for RPCs registered without a provider (client-side
/// registrations, and the low half of ids that name "any provider").
pub const DEFAULT_PROVIDER_ID: u16 = 0xffff;

/// Bob Jenkins' 32-bit "lookup2" hash with the seed Margo uses (`0xfeedbeef`).
///
/// The key is consumed 12 bytes at a time into three accumulators that are mixed after each
/// block; the last, partial block also adds the key length.
pub fn jenkins_hash(key: &[u8]) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        const SHIFTS: [(bool, u32); 9] = [
            (false, 13),
            (true, 8),
            (false, 13),
            (false, 12),
            (true, 16),
            (false, 5),
            (false, 3),
            (true, 10),
            (false, 15),
        ];
        // Each round subtracts the two other accumulators from one of them and folds in a
        // shifted copy of the last one touched; the rounds cycle through a, b, c.
        for (round, (left, shift)) in SHIFTS.iter().enumerate() {
            let (x, y, z) = match round % 3 {
                0 => (&mut *a, *b, *c),
                1 => (&mut *b, *c, *a),
                _ => (&mut *c, *a, *b),
            };
            *x = x.wrapping_sub(y).wrapping_sub(z);
            *x ^= if *left { z << shift } else { z >> shift };
        }
    }
    let word = |b: &[u8]| -> u32 {
        b.iter().enumerate().fold(0u32, |acc, (i, &byte)| {
            acc.wrapping_add(u32::from(byte) << (8 * i))
        })
    };
    let golden = 0x9e37_79b9u32;
    let (mut a, mut b, mut c) = (golden, golden, 0xfeed_beefu32);
    let mut blocks = key.chunks_exact(12);
    for block in &mut blocks {
        a = a.wrapping_add(word(&block[0..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let tail = blocks.remainder();
    c = c.wrapping_add(key.len() as u32);
    // The last 1..=11 bytes go to a, b, then to the high three bytes of c (its low byte holds
    // the length).
    let part = |from: usize, to: usize| tail.get(from..to.min(tail.len())).unwrap_or(&[]);
    a = a.wrapping_add(word(part(0, 4)));
    b = b.wrapping_add(word(part(4, 8)));
    c = c.wrapping_add(word(part(8, 11)) << 8);
    mix(&mut a, &mut b, &mut c);
    c
}

/// The Margo id of RPC `name` sent to provider `provider_id`: the name's [`jenkins_hash`] in
/// the high 32 bits, the provider id in the low 16 bits.
pub fn rpc_id(name: &str, provider_id: u16) -> u64 {
    (u64::from(jenkins_hash(name.as_bytes())) << 32) | u64::from(provider_id)
}

/// Splits an RPC id into its name hash and provider id. Returns `None` when bits 16..32 are not
/// zero (not an id Margo builds).
pub fn split_rpc_id(id: u64) -> Option<(u32, u16)> {
    if id & 0xffff_0000 != 0 {
        return None;
    }
    Some(((id >> 32) as u32, (id & 0xffff) as u16))
}
