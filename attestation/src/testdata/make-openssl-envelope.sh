#!/bin/sh
# Builds a KMS-shaped CiphertextForRecipient (byte layout identical to the AWS sample) with a known key,
# then checks it with `openssl cms -decrypt`.
# Run in an empty directory; the committed fixtures are its outputs, renamed:
#   kat_envelope.ber -> openssl-envelope.ber, kat_key.pem -> openssl-envelope-key.pem,
#   pt.bin -> openssl-envelope-plaintext.bin.
# kms-recipient-sample.ber is `input_ber[]` of aws-nitro-enclaves-sdk-c's tests/cms_test.c: a
# CiphertextForRecipient returned by AWS KMS (its private key is not public).
set -e
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out kat_key.pem
openssl pkey -in kat_key.pem -pubout -outform DER -out kat_pub_spki.der
head -c 32 /dev/urandom > pt.bin; head -c 32 /dev/urandom > cek.bin; head -c 16 /dev/urandom > iv.bin
openssl pkeyutl -encrypt -pubin -inkey kat_pub_spki.der -keyform DER -in cek.bin -out ek.bin \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
openssl enc -aes-256-cbc -K $(xxd -p -c64 cek.bin) -iv $(xxd -p iv.bin) -in pt.bin -out ct.bin
python3 - <<'PY'
import hashlib
def tlv(t,c):
    n=len(c); l=bytes([n]) if n<128 else (lambda b: bytes([0x80|len(b)])+b)(n.to_bytes((n.bit_length()+7)//8,'big'))
    return bytes([t])+l+c
r=lambda f: open(f,'rb').read()
spki,ek,iv,ct=r('kat_pub_spki.der'),r('ek.bin'),r('iv.bin'),r('ct.bin')
OAEP_AI=bytes.fromhex('303c06092a864886f70d010107302fa00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500')
ri=tlv(0x31,tlv(0x30,bytes.fromhex('020102')+tlv(0x80,hashlib.sha256(spki).digest())+OAEP_AI+tlv(0x04,ek)))
aes=tlv(0x30,bytes.fromhex('060960864801650304012a')+tlv(0x04,iv))
open('kat_envelope.ber','wb').write(bytes.fromhex('308006092a864886f70d010703a0803080020102')+ri+
  bytes.fromhex('308006092a864886f70d010701')+aes+b'\xa0\x80'+tlv(0x04,ct)+b'\x00'*10)
PY
openssl cms -decrypt -inform DER -in kat_envelope.ber -inkey kat_key.pem -out dec.bin && cmp dec.bin pt.bin && echo OK
