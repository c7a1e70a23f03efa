//! `jpki-kiosk reconcile`: the three views [`crate::issuance::reconcile`] compares,
//! gathered from the real peers — the card in the reader (PC/SC), the kiosk's journal, and
//! the CA (a holder query over CMP).
//!
//! Two limits of what can be known at the counter: the signing certificate can only be
//! read with the resident's signing password (without it, that slot of the card is
//! [`CardView::unread`] and not compared with the card), and the CA's holder query says
//! whether a certificate is revoked, not whether its certConf arrived, so an unconfirmed
//! certificate looks live here.

use std::ffi::CStr;
use std::time::Duration;

use x509_cert::der::Encode;

use crate::card::admin_key::MasterKey;
use crate::card::files::KeySlot;
use crate::card::jpki_ap::JpkiAp;
use crate::card::personalize::Personalizer;
use crate::card::pin::SigningPassword;
use crate::card::transport::PcscTransport;
use crate::pki::holder_query::HolderQuery;
use crate::enroll::{Enroller, Transaction};
use crate::issuance::adapters::store::SqliteJournal;
use crate::issuance::model::{CardSerial, Slot};
use crate::issuance::reconcile::{CaStatus, CaView, CardView, LocalView};

/// Why the views could not be gathered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatherError {
    /// The card could not be read.
    #[error("カードを読めません: {0}\ncannot read the card: {0}")]
    Card(String),
    /// The journal could not be read.
    #[error("記録（journal.db）を読めません: {0}\ncannot read the journal: {0}")]
    Journal(String),
    /// The CA did not answer the holder query.
    #[error("認証局に照会できません: {0}\nthe CA did not answer: {0}")]
    Ca(String),
}

/// The card in `reader`: its serial (after the issuer's authentication), its key pairs and
/// its certificates. The signing certificate is read only with `sign_password`.
pub fn card_view(
    ctx: &pcsc::Context,
    reader: &CStr,
    master: &MasterKey,
    sign_password: Option<&SigningPassword>,
) -> Result<CardView, GatherError> {
    let bad = |e: &dyn std::fmt::Display| GatherError::Card(e.to_string());
    let mut pcsc = PcscTransport::wait_and_connect(ctx, reader, Duration::from_secs(10)).map_err(|e| bad(&e))?;
    let mut ap = JpkiAp::new(&mut pcsc);
    ap.detect().map_err(|e| bad(&e))?;
    let serial = Personalizer::new(&mut ap).authenticate(master.bytes()).map_err(|e| bad(&e))?;
    let mut view = CardView { serial: Some(CardSerial(hex::encode(serial))), ..CardView::default() };
    for slot in Slot::ALL {
        if Personalizer::new(&mut ap).read_public_key(slot.key_slot()).is_ok() {
            view.keys.push(slot);
        }
    }
    if let Ok(der) = ap.read_certificate(KeySlot::Auth.cert_fid()) {
        view.certs.insert(Slot::Auth, der);
    }
    match sign_password {
        Some(pw) => {
            ap.verify(pw).map_err(|e| bad(&e))?;
            if let Ok(der) = ap.read_certificate(KeySlot::Sign.cert_fid()) {
                view.certs.insert(Slot::Sign, der);
            }
        }
        None => view.unread.push(Slot::Sign),
    }
    Ok(view)
}

/// What the journal says of `serial`: the newest visit bound to it, and its view.
pub fn local_view(journal: &SqliteJournal, serial: &CardSerial) -> Result<(Option<String>, LocalView), GatherError> {
    let bad = |e: &dyn std::fmt::Display| GatherError::Journal(e.to_string());
    for visit in journal.visits_newest_first().map_err(|e| bad(&e))? {
        let records = journal.records(&visit).map_err(|e| bad(&e))?;
        let view = LocalView::from_journal(&records);
        if view.serial.as_ref() == Some(serial) {
            return Ok((Some(visit), view));
        }
    }
    Ok((None, LocalView::default()))
}

/// What the CA holds for `serial` (a holder query by card id).
pub fn ca_view(ca: &impl Enroller, serial: &CardSerial) -> Result<CaView, GatherError> {
    let query = HolderQuery { card_id: Some(serial.0.clone()), ..HolderQuery::default() };
    let found = ca.holder_certs(&query, &Transaction::random()).map_err(|e| GatherError::Ca(e.to_string()))?;
    let certs = found
        .iter()
        .filter_map(|c| {
            let slot = super::current_cert(&c.certificate)?.slot;
            let der = c.certificate.to_der().ok()?;
            let status = if c.revoked { CaStatus::Revoked } else { CaStatus::Live };
            Some((slot, der, status))
        })
        .collect();
    Ok(CaView { certs })
}

/// A discrepancy in words for staff (Japanese).
pub fn describe(d: &crate::issuance::reconcile::Discrepancy) -> String {
    use crate::issuance::reconcile::Discrepancy as D;
    let name = |slot: &Slot| if *slot == Slot::Sign { "署名用電子証明書" } else { "利用者証明用電子証明書" };
    match d {
        D::OtherCard => "読み取り機のカードは、記録にあるカードと違います。".into(),
        D::CardCertNotLive { slot, .. } => format!("カードの{}は、認証局で有効になっていません。", name(slot)),
        D::CaCertNotOnCard { slot } => format!("認証局に有効な{}があり、カードには入っていません。", name(slot)),
        D::LocalDiffersFromCard { slot } => format!("窓口の記録とカードで{}が違います。", name(slot)),
        D::LocalDiffersFromCa { slot } => format!("窓口の記録と認証局で{}が違います。", name(slot)),
        D::KeyWithoutCert { slot } => format!("カードに{}の鍵があり、証明書がありません（中断した手続き）。", name(slot)),
    }
}
