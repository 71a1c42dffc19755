//! Base58 (Bitcoin alphabet) for the short values keys are made of, without
//! allocating: encoding divides 32-bit limbs by 58⁵ (< 2³²), decoding
//! multiplies 64-bit limbs by 58¹⁰ (< 2⁶⁴), instead of the byte-at-a-time
//! quadratic loop of the general algorithm.
//! Output is identical to the `bs58` crate's (leading zero bytes are `1`s);
//! the tests compare the two on random inputs.

/// The Bitcoin alphabet, digit value = index.
pub const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// 58⁵, the largest power of 58 that fits a `u32`.
const BASE5: u64 = 656_356_768;

/// Largest value handled: 80 bytes (issued-key identifiers are at most
/// 100 characters, i.e. at most 74 bytes).
pub const MAX_BYTES: usize = LIMBS * 4;
const LIMBS: usize = 20;

/// Digit value of each byte; `0xff` for bytes outside the alphabet (every
/// byte has an entry, so decoding indexes without a bounds check).
const fn decode_table() -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 58 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
}
const DECODE: [u8; 256] = decode_table();

/// Encodes `input` (at most [`MAX_BYTES`]) into `out`; returns the text.
/// `None` if the input is too long or `out` too short (needs at most
/// `input.len() * 138 / 100 + 1` bytes).
pub fn encode_into<'o>(input: &[u8], out: &'o mut [u8]) -> Option<&'o str> {
    if input.len() > MAX_BYTES {
        return None;
    }
    let zeros = input.iter().take_while(|&&b| b == 0).count();
    // Little-endian u32 limbs of the big-endian input.
    let mut limbs = [0u32; LIMBS];
    let mut n = 0;
    for chunk in input[zeros..].rchunks(4) {
        let mut v = 0u32;
        for &b in chunk {
            v = (v << 8) | b as u32;
        }
        limbs[n] = v;
        n += 1;
    }
    // Digits, least significant first, into the tail of a scratch buffer.
    let mut digits = [0u8; MAX_BYTES * 138 / 100 + 5];
    let mut d = 0;
    while n > 0 {
        let mut rem = 0u64;
        for limb in limbs[..n].iter_mut().rev() {
            let cur = (rem << 32) | *limb as u64;
            *limb = (cur / BASE5) as u32;
            rem = cur % BASE5;
        }
        while n > 0 && limbs[n - 1] == 0 {
            n -= 1;
        }
        for _ in 0..5 {
            digits[d] = (rem % 58) as u8;
            rem /= 58;
            d += 1;
        }
    }
    while d > 0 && digits[d - 1] == 0 {
        d -= 1;
    }
    let len = zeros + d;
    if out.len() < len {
        return None;
    }
    out[..zeros].fill(b'1');
    for (i, &digit) in digits[..d].iter().rev().enumerate() {
        out[zeros + i] = ALPHABET[digit as usize];
    }
    // Only alphabet bytes were written.
    std::str::from_utf8(&out[..len]).ok()
}

/// Decodes `s` into `out`; returns the bytes. `None` on a character outside
/// the alphabet, a result over [`MAX_BYTES`], or `out` too short.
pub fn decode_into<'o>(s: &str, out: &'o mut [u8]) -> Option<&'o [u8]> {
    let s = s.as_bytes();
    let zeros = s.iter().take_while(|&&c| c == b'1').count();
    // Decoding only multiplies, so it takes ten digits (58¹⁰ < 2⁶⁴) per
    // step into 64-bit limbs with a 128-bit product: a 64-character
    // identifier is 7 steps over at most 6 limbs.
    let mut limbs = [0u64; LIMBS / 2];
    let mut n = 0;
    for chunk in s[zeros..].chunks(10) {
        let mut mult = 1u64;
        let mut carry = 0u64;
        // Digits are < 58, so a byte outside the alphabet (0xff) is the
        // only way to set the high bit: one test per chunk, not per byte.
        let mut seen = 0u8;
        for &c in chunk {
            let v = DECODE[c as usize];
            seen |= v;
            mult *= 58;
            carry = carry.wrapping_mul(58).wrapping_add(v as u64);
        }
        if seen & 0x80 != 0 {
            return None;
        }
        for limb in &mut limbs[..n] {
            let t = u128::from(*limb) * u128::from(mult) + u128::from(carry);
            *limb = t as u64;
            carry = (t >> 64) as u64;
        }
        if carry > 0 {
            if n == limbs.len() {
                return None;
            }
            limbs[n] = carry;
            n += 1;
        }
    }
    let mut value = [0u8; MAX_BYTES];
    for (i, limb) in limbs[..n].iter().enumerate() {
        let at = MAX_BYTES - 8 * (i + 1);
        value[at..at + 8].copy_from_slice(&limb.to_be_bytes());
    }
    let first = value.iter().position(|&b| b != 0).unwrap_or(MAX_BYTES);
    let digits = &value[first..];
    let len = zeros + digits.len();
    if len > MAX_BYTES || out.len() < len {
        return None;
    }
    out[..zeros].fill(0);
    out[zeros..len].copy_from_slice(digits);
    Some(&out[..len])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn enc(b: &[u8]) -> String {
        let mut out = [0u8; 200];
        encode_into(b, &mut out).unwrap().to_string()
    }

    fn dec(s: &str) -> Option<Vec<u8>> {
        let mut out = [0u8; 200];
        decode_into(s, &mut out).map(<[u8]>::to_vec)
    }

    #[test]
    fn vectors() {
        // From the Base58 draft (draft-msporny-base58) and bs58's tests.
        assert_eq!(enc(b""), "");
        assert_eq!(enc(b"Hello World!"), "2NEpo7TZRRrLZSi2U");
        assert_eq!(
            enc(b"The quick brown fox jumps over the lazy dog."),
            "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z"
        );
        assert_eq!(enc(&[0, 0, 0x28, 0x7f, 0xb4, 0xcd]), "11233QC4");
        assert_eq!(enc(&[0]), "1");
        assert_eq!(enc(&[0, 0]), "11");
        assert_eq!(
            enc(&[0xff; 32]),
            "JEKNVnkbo3jma5nREBBJCDoXFVeKkD56V3xKrvRmWxFG"
        );
        assert_eq!(dec("11233QC4").unwrap(), [0, 0, 0x28, 0x7f, 0xb4, 0xcd]);
        assert_eq!(dec("2NEpo7TZRRrLZSi2U").unwrap(), b"Hello World!");
        assert_eq!(dec("").unwrap(), b"");
        assert_eq!(dec("1").unwrap(), [0]);
    }

    #[test]
    fn rejects_bad_characters_and_overflow() {
        for bad in ["0", "O", "I", "l", "abc!", "é", "2NEpo7TZ RRrLZSi2U"] {
            assert_eq!(dec(bad), None, "{bad}");
        }
        // 110 'z's is more than 80 bytes of value.
        assert_eq!(dec(&"z".repeat(110)), None);
        assert_eq!(encode_into(&[1u8; MAX_BYTES + 1], &mut [0u8; 200]), None);
        // Output buffers that are too short.
        assert_eq!(encode_into(b"Hello World!", &mut [0u8; 5]), None);
        assert_eq!(decode_into("2NEpo7TZRRrLZSi2U", &mut [0u8; 3]), None);
    }

    proptest! {
        #[test]
        fn encode_matches_bs58(b in proptest::collection::vec(any::<u8>(), 0..=MAX_BYTES),
                               zeros in 0usize..4) {
            let mut v = vec![0u8; zeros];
            v.extend(b.into_iter().take(MAX_BYTES - zeros));
            let ours = enc(&v);
            prop_assert_eq!(&ours, &bs58::encode(&v).into_string());
            prop_assert_eq!(dec(&ours).unwrap(), v);
        }

        #[test]
        fn decode_matches_bs58(s in "[1-9A-HJ-NP-Za-km-z]{0,100}") {
            let theirs = bs58::decode(&s).into_vec().ok().filter(|v| v.len() <= MAX_BYTES);
            prop_assert_eq!(dec(&s), theirs);
        }

        #[test]
        fn decode_any_text_never_panics(s in ".{0,120}") {
            let theirs = bs58::decode(&s).into_vec().ok().filter(|v| v.len() <= MAX_BYTES);
            prop_assert_eq!(dec(&s), theirs);
        }
    }
}
