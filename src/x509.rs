//! Certificate files: reading a PEM file with a size bound, and the X.509 version of a
//! certificate, for messages about certificates that rustls rejects.
//!
//! rustls (through webpki) accepts only X.509 version 3 certificates for servers and
//! clients, and reports any other version as `UnsupportedCertVersion`, a message that does
//! not say what to change. `openssl x509 -req` without `-extfile` makes a version 1
//! certificate, so this is a common mistake with a private CA. CA certificates of any version
//! are accepted as trust anchors.

use std::io::Read;
use std::path::Path;

/// The largest certificate or key file read. PEM chains are a few KiB, so a larger file is
/// almost certainly the wrong file.
const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the PEM file at `path`, at most [`MAX_PEM_FILE_BYTES`] of it. A larger file is an
/// error that gives its size, and so is a file that grows past the bound while it is read.
pub(crate) fn read_pem_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let too_large = |size: u64| {
        std::io::Error::other(format!(
            "it has {size} bytes, more than the 1 MiB a PEM file can reasonably have"
        ))
    };
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > MAX_PEM_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Describes why a PEM file did not parse, in words instead of the parser's byte lists. No text
/// of the file is quoted, because a file that joins a certificate and its key can put key
/// text where a label or a line is expected. Only a section label that reads like one, such as
/// `CERTIFICATE`, is named.
pub(crate) fn pem_error_reason(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;

    match error {
        Error::MissingSectionEnd { end_marker } if is_pem_label(end_marker) => format!(
            "the -----END {}----- line is missing, so the file may be cut short",
            String::from_utf8_lossy(end_marker)
        ),
        Error::MissingSectionEnd { .. } => {
            "a -----BEGIN line has no matching -----END line, so the file may be cut short or joined onto one line".to_owned()
        }
        Error::IllegalSectionStart { .. } => {
            "a line that starts with -----BEGIN is not a valid PEM header line".to_owned()
        }
        Error::Base64Decode(_) => {
            "the text between the BEGIN and END lines is not valid base64".to_owned()
        }
        Error::Io(error) => error.to_string(),
        Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "the file is not valid PEM".to_owned(),
    }
}

/// Reports whether `label` looks like a PEM section label (`CERTIFICATE`, `EC PRIVATE KEY`):
/// short, and only capital letters, digits and spaces.
fn is_pem_label(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= 32
        && label
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

/// The DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// The DER tag of an INTEGER.
const INTEGER: u8 = 0x02;
/// The DER tag of the explicit `[0]` that contains the version in a `TBSCertificate`.
const VERSION: u8 = 0xA0;

/// Returns the X.509 version (1, 2 or 3) of the DER certificate `der`, or `None` when `der`
/// does not start like a certificate.
///
/// A certificate is `SEQUENCE { tbsCertificate SEQUENCE { [0] version INTEGER, serial ... } }`.
/// The version field is optional with a default of version 1, and its integer is the version
/// minus one.
pub(crate) fn version(der: &[u8]) -> Option<u8> {
    let (SEQUENCE, certificate) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs_certificate) = element(certificate)? else {
        return None;
    };
    match element(tbs_certificate)? {
        (VERSION, field) => match element(field)? {
            (INTEGER, [number]) => number.checked_add(1),
            _ => None,
        },
        // The serial number comes first when the version field is left out.
        (INTEGER, _) => Some(1),
        _ => None,
    }
}

/// Splits the first DER element off `input` and returns its tag and contents. Only
/// single-byte tags are read, which covers every element that [`version`] reads.
fn element(input: &[u8]) -> Option<(u8, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits count the length bytes that follow.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<usize>() || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, rest)
    };
    let contents = rest.get(..length)?;
    Some((tag, contents))
}

/// Reports whether rustls rejected a certificate because it is not X.509 version 3.
pub(crate) fn is_unsupported_version(error: &rustls::Error) -> bool {
    let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = error else {
        return false;
    };
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::UnsupportedCertVersion)
    )
}

/// Builds test certificates that rcgen cannot make: rcgen writes version 3 only.
#[cfg(test)]
pub(crate) mod testing {
    use rcgen::{KeyPair, PublicKeyData, SigningKey};

    /// The DER of the object identifier 1.2.840.10045.4.3.2, ecdsa-with-SHA256, which is
    /// the algorithm of rcgen's default key.
    const ECDSA_WITH_SHA256: [u8; 10] =
        [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// The DER of the object identifier 2.5.4.3, commonName.
    const COMMON_NAME: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];

    /// Returns a PEM X.509 version 1 certificate for `key` with the common name
    /// `common_name`, self-signed, valid from 2020 to 2099, as `openssl x509 -req` makes
    /// without `-extfile`. `key` must be an ECDSA P-256 key, rcgen's default.
    pub(crate) fn version_1_certificate(key: &KeyPair, common_name: &str) -> String {
        let name = der(
            0x30,
            &der(
                0x31,
                &der(
                    0x30,
                    &[&COMMON_NAME[..], &der(0x0c, common_name.as_bytes())].concat(),
                ),
            ),
        );
        let validity = der(
            0x30,
            &[der(0x17, b"200101000000Z"), der(0x18, b"20991231235959Z")].concat(),
        );
        let algorithm = der(0x30, &ECDSA_WITH_SHA256);
        let tbs_certificate = der(
            0x30,
            &[
                der(0x02, &[0x01]),
                algorithm.clone(),
                name.clone(),
                validity,
                name,
                key.subject_public_key_info(),
            ]
            .concat(),
        );
        let signature = key.sign(&tbs_certificate).unwrap();
        // A BIT STRING starts with the number of unused bits in its last byte.
        let signature = der(0x03, &[&[0][..], &signature].concat());
        let certificate = der(0x30, &[tbs_certificate, algorithm, signature].concat());
        pem(&certificate)
    }

    /// Encodes one DER element.
    fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let length = contents.len();
        if length < 0x80 {
            out.push(length as u8);
        } else {
            let bytes: Vec<u8> = length
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(contents);
        out
    }

    fn pem(der: &[u8]) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        let mut text = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push('\n');
        }
        text.push_str("-----END CERTIFICATE-----\n");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn pem_file_read_up_to_bound() {
        let dir = tempfile::tempdir().unwrap();
        let at_bound = dir.path().join("at-bound.pem");
        std::fs::write(&at_bound, vec![b'a'; MAX_PEM_FILE_BYTES as usize]).unwrap();
        assert_eq!(
            read_pem_file(&at_bound).unwrap().len() as u64,
            MAX_PEM_FILE_BYTES
        );

        let over = dir.path().join("over.pem");
        std::fs::write(&over, vec![b'a'; MAX_PEM_FILE_BYTES as usize + 1]).unwrap();
        let message = read_pem_file(&over).unwrap_err().to_string();
        assert_eq!(
            message,
            "it has 1048577 bytes, more than the 1 MiB a PEM file can reasonably have"
        );

        let missing = read_pem_file(&dir.path().join("missing.pem")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn version_reads_rcgen_certificate_as_3() {
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(version(certificate.der()), Some(3));
    }

    #[test]
    fn version_reads_omitted_field_as_1() {
        let key = KeyPair::generate().unwrap();
        let pem = testing::version_1_certificate(&key, "client");
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(version(&der), Some(1));
    }

    #[test]
    fn version_rejects_other_der() {
        assert_eq!(version(b""), None);
        assert_eq!(version(&[0x30]), None);
        assert_eq!(version(&[0x30, 0x02, 0x05, 0x00]), None);
        // A length longer than the input.
        assert_eq!(version(&[0x30, 0x82, 0xff, 0xff, 0x30, 0x00]), None);
        // An explicitly encoded version 2 field.
        assert_eq!(
            version(&[0x30, 0x07, 0x30, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x01]),
            Some(2)
        );
    }

    #[test]
    fn rustls_rejects_version_1_as_unsupported_version() {
        let key = KeyPair::generate().unwrap();
        let pem = testing::version_1_certificate(&key, "client");
        let chain = vec![CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()];
        let private_key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let error = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_client_auth_cert(chain, private_key)
            .unwrap_err();
        assert!(is_unsupported_version(&error), "{error:?}");
        let other = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert!(!is_unsupported_version(&other));
    }

    #[test]
    fn pem_error_reason_names_the_problem() {
        let parse = |text: &str| {
            let parsed: Result<Vec<_>, _> =
                CertificateDer::pem_slice_iter(text.as_bytes()).collect();
            pem_error_reason(&parsed.expect_err("parsed a broken PEM file"))
        };
        assert_eq!(
            parse("-----BEGIN CERTIFICATE-----\nMIIB\n"),
            "the -----END CERTIFICATE----- line is missing, so the file may be cut short"
        );
        assert_eq!(
            parse("-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n"),
            "the text between the BEGIN and END lines is not valid base64"
        );
    }

    #[test]
    fn pem_error_reason_never_quotes_key_text() {
        // A certificate and its key joined onto one line, as a secret store may write them.
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec!["replica".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let joined = format!("{}{}", certificate.pem(), key.serialize_pem()).replace('\n', " ");
        let key_text: String = key
            .serialize_pem()
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(joined.as_bytes()).collect();
        let reason = pem_error_reason(&parsed.expect_err("parsed a PEM file joined onto one line"));
        for piece in key_text.as_bytes().chunks(8) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !reason.contains(piece),
                "{reason} quotes {piece:?} of the key"
            );
        }
        assert!(reason.contains("-----BEGIN line"), "{reason}");
        // The parser's own message listed the bytes of the whole joined file, key included.
        assert!(reason.len() < 200, "{reason}");
    }
}
