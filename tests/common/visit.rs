//! A counter over real peers for whole-visit tests: a private pcscd with `jpki-vcard`
//! (reader 0), `jpki-ca serve` on loopback (HTTPS with the RA certificate), and SQLite
//! journal, audit log, registry and case file in one temporary directory; staff and
//! resident scripted by [`People`]. Include with
//! `#[path = "common/ca_server.rs"] mod ca_server;` and
//! `#[path = "common/visit.rs"] mod visit;`.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use der::{Decode, DecodePem, Encode};
use rand_core::{OsRng, RngCore};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use jpki_kiosk::card::admin_key::DEMO_MASTER_KEY;
use jpki_kiosk::card::files::KeySlot;
use jpki_kiosk::card::jpki_ap::JpkiAp;
use jpki_kiosk::card::personalize::Personalizer;
use jpki_kiosk::card::pin::SigningPassword;
use jpki_kiosk::card::transport::{self, PcscTransport};
use jpki_kiosk::enroll::client::CmpClient;
use jpki_kiosk::enroll::http::HttpTransport;
use jpki_kiosk::pki::holder_query::HolderQuery;
use jpki_kiosk::enroll::{Enroller, Transaction};
use jpki_kiosk::issuance::adapters::ca::{CaDirectory, CmpCa};
use jpki_kiosk::issuance::adapters::script::{ca_client, CaFiles};
use jpki_kiosk::issuance::adapters::card::PcscCard;
use jpki_kiosk::issuance::adapters::cases::{Records, SqliteCases};
use jpki_kiosk::issuance::adapters::store::{SqliteAudit, SqliteJournal};
use jpki_kiosk::issuance::adapters::{Clock, Counter, PadEntry, ReceiptFile, SystemClock};
use jpki_kiosk::issuance::driver::{Driver, Ports, Status};
use jpki_kiosk::issuance::event::{Opening, Visit};
use jpki_kiosk::issuance::model::{
    CardSerial, Form, IdDocument, PresenterKind, Seed, Slot, TransactionId, VisitId,
};
use jpki_kiosk::issuance::reconcile::{CaStatus, CaView, CardView, LocalView};
use jpki_kiosk::issuance::{
    reconcile, Command as VisitCommand, Event, JournalRecord, Outcome, PadCommand, Screen,
};
use jpki_kiosk::peers::card_stack::{CardProcess, CardStack};
use jpki_kiosk::registry::sample::{ids, TOWN};
use jpki_kiosk::registry::sqlite::SqliteRegistry;
use jpki_kiosk::rules::identity::DocumentGroup;
use jpki_kiosk::staff::OperatorId;

use super::ca_server::CaServer;

/// How long to wait for a card to come or go.
pub const SECS10: Duration = Duration::from_secs(10);

/// Staff and resident: the form, who stands at the counter with which documents, and
/// what is typed on the pad (the same PIN for a new entry and a confirmation).
#[derive(Clone)]
pub struct People {
    /// The application form.
    pub form: Form,
    /// Who presents.
    pub presenter: PresenterKind,
    /// Their documents.
    pub documents: Vec<IdDocument>,
    /// The auth PIN typed.
    pub auth: String,
    /// The signing password typed.
    pub sign: String,
}

/// A driving licence (a photo ID).
pub fn licence(number: &str) -> Vec<IdDocument> {
    vec![IdDocument {
        kind: "driving_licence".into(),
        group: DocumentGroup::Photo,
        number: number.into(),
    }]
}

/// 山本　恵子, an ordinary adult, asking for both certificates in person.
pub fn yamamoto(auth: &str, sign: &str) -> People {
    People {
        form: Form {
            resident_id: ids::YAMAMOTO.into(),
            name: "山本　恵子".into(),
            furigana: "ヤマモト　ケイコ".into(),
            birth_date: time::macros::date!(1980 - 02 - 17),
            sex: 2,
            address: format!("{TOWN}本郷二丁目１番１６号"),
            want_sign: true,
            want_auth: true,
            substitutes: vec![],
            case: None,
        },
        presenter: PresenterKind::Holder,
        documents: licence("401234567890"),
        auth: auth.into(),
        sign: sign.into(),
    }
}

/// 桒原　誠 (JIS X 0212, no substitute), an ordinary adult.
pub fn kuwahara(auth: &str, sign: &str) -> People {
    People {
        form: Form {
            resident_id: ids::KUWAHARA.into(),
            name: "桒原　誠".into(),
            furigana: "クワハラ　マコト".into(),
            birth_date: time::macros::date!(1959 - 11 - 03),
            sex: 1,
            address: format!("{TOWN}大字川辺４５６番地１"),
            want_sign: true,
            want_auth: true,
            substitutes: vec![],
            case: None,
        },
        presenter: PresenterKind::Holder,
        documents: licence("501234567890"),
        auth: auth.into(),
        sign: sign.into(),
    }
}

impl Counter for People {
    fn answer(&mut self, command: &VisitCommand, pad: &mut PadEntry<'_>) -> Option<Event> {
        let typed = |slot: Slot| {
            Zeroizing::new(match slot {
                Slot::Auth => self.auth.clone(),
                Slot::Sign => self.sign.clone(),
            })
        };
        match command {
            VisitCommand::Show {
                screen: Screen::Form,
            } => Some(Event::FormSubmitted {
                form: self.form.clone(),
            }),
            VisitCommand::Show {
                screen: Screen::IdentityCheck,
            } => Some(Event::IdentityRecorded {
                presenter: self.presenter,
                documents: self.documents.clone(),
            }),
            VisitCommand::Show {
                screen: Screen::CollectFee { amount },
            } => Some(Event::FeePaid { amount: *amount }),
            VisitCommand::Pad {
                pad: PadCommand::AskNew { slot },
            } => {
                pad.enter_new(*slot, typed(*slot)).unwrap();
                Some(Event::PadReady { slot: *slot })
            }
            VisitCommand::Pad {
                pad: PadCommand::AskConfirm { slot },
            } => {
                pad.enter_confirmation(*slot, typed(*slot)).unwrap();
                Some(Event::PadConfirmed { slot: *slot })
            }
            _ => None,
        }
    }
}

/// The opening of visit `n` of `kind` on `date`, with fresh randomness.
pub fn opening(n: u32, kind: Visit, date: time::Date) -> Opening {
    let mut r = [[0u8; 16]; 4];
    for x in &mut r {
        OsRng.fill_bytes(x);
    }
    Opening {
        visit: VisitId(format!("v-{n:04}")),
        kind,
        date,
        operator: "staff-07".into(),
        seed: Seed {
            transaction: TransactionId(r[0]),
            revocation: TransactionId(r[1]),
            sender_nonce: r[2],
            test_nonce: r[3],
        },
        fees: Default::default(),
        identity: Default::default(),
    }
}

/// Today (UTC), the date the CA issues on.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Everything a visit runs on.
pub struct Counterside {
    /// The temporary directory (journal, audit, registry, cases, receipts, letters).
    pub dir: tempfile::TempDir,
    /// pcscd + vpcd in their namespaces.
    pub stack: CardStack,
    /// `jpki-ca serve`.
    pub ca: CaServer,
}

impl Counterside {
    /// Starts the peers and seeds the registry.
    pub fn new() -> Counterside {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = CardStack::start(&dir.path().join("stack")).expect("card stack starts");
        stack.set_vcard_binary(env!("CARGO_BIN_EXE_jpki-vcard"));
        let ca = CaServer::start(&[]);
        let mut registry = SqliteRegistry::open(&dir.path().join("registry.db")).unwrap();
        registry.seed_sample().unwrap();
        Counterside { dir, stack, ca }
    }

    /// A path in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A virtual card (state file `name`) in reader 0.
    pub fn card(&mut self, name: &str) -> CardProcess {
        let state = self.path(name);
        self.stack
            .start_card(0, &state, &[])
            .expect("virtual card comes up")
    }

    /// The CA's certificate `name`.
    pub fn ca_cert(&self, name: &str) -> Certificate {
        Certificate::from_pem(fs::read(self.ca.file(name)).unwrap()).unwrap()
    }

    /// The kiosk's CMP client for this CA.
    pub fn client(&self) -> CmpClient<HttpTransport> {
        let files = CaFiles::in_dir(&self.ca.dir.path().join("ca"));
        ca_client(&format!("https://{}/pkix/", self.ca.https), &files, |_| {}).unwrap()
    }

    /// The card adapter on reader 0, naming the signing certificate through the CA.
    pub fn card_adapter(&self) -> PcscCard {
        let ctx = transport::establish().unwrap();
        let mut card = PcscCard::new(ctx, self.stack.reader_name(0).unwrap(), &DEMO_MASTER_KEY)
            .with_directory(Box::new(CaDirectory(self.client())));
        card.detect_timeout = Duration::from_millis(500);
        card
    }

    /// The journal.
    pub fn journal(&self) -> SqliteJournal {
        SqliteJournal::open(&self.path("journal.db")).unwrap()
    }

    /// [`Counterside::ports`] with another clock.
    pub fn ports_with_clock<'a>(
        &self,
        card: &'a mut PcscCard,
        ca: &'a mut CmpCa<CmpClient<HttpTransport>>,
        people: People,
        clock: Box<dyn Clock + 'a>,
    ) -> Ports<'a> {
        let mut ports = self.ports(card, ca, people);
        ports.clock = clock;
        ports
    }

    /// The ports over these peers, with `people` at the counter.
    pub fn ports<'a>(
        &self,
        card: &'a mut PcscCard,
        ca: &'a mut CmpCa<CmpClient<HttpTransport>>,
        people: People,
    ) -> Ports<'a> {
        Ports {
            card: Box::new(card),
            ca: Box::new(ca),
            registry: Box::new(Records {
                registry: SqliteRegistry::open(&self.path("registry.db")).unwrap(),
                cases: SqliteCases::open(&self.path("cases.db")).unwrap(),
            }),
            printer: Box::new(ReceiptFile {
                dir: self.dir.path().to_owned(),
            }),
            counter: Box::new(people),
            journal: Box::new(self.journal()),
            audit: Box::new(
                SqliteAudit::open(&self.path("audit.db"), OperatorId::new("staff-07").unwrap())
                    .unwrap(),
            ),
            clock: Box::new(SystemClock),
        }
    }

    /// Runs one visit to its end with the card adapter on reader 0; returns the outcome
    /// and the journal.
    pub fn visit(&self, opening: Opening, people: People) -> (Outcome, Vec<JournalRecord>) {
        let id = opening.visit.0.clone();
        let mut card = self.card_adapter();
        let mut ca = CmpCa::new(self.client());
        let (driver, status) =
            Driver::open(self.ports(&mut card, &mut ca, people), opening).expect("visit runs");
        let step = driver.visit().step_name();
        drop(driver);
        let Status::Ended(outcome) = status else {
            panic!("visit {id} waits at {step}");
        };
        (outcome, self.journal().records(&id).unwrap())
    }

    /// The card in reader 0 as its issuer sees it (the signing certificate read with
    /// `sign_password` when it verifies).
    pub fn card_view(&self, sign_password: &str) -> CardView {
        let ctx = transport::establish().unwrap();
        let mut pcsc =
            PcscTransport::wait_and_connect(&ctx, &self.stack.reader_name(0).unwrap(), SECS10)
                .unwrap();
        let mut ap = JpkiAp::new(&mut pcsc);
        ap.detect().unwrap();
        let serial = Personalizer::new(&mut ap)
            .authenticate(&DEMO_MASTER_KEY)
            .unwrap();
        let mut view = CardView {
            serial: Some(CardSerial(hex::encode(serial))),
            ..CardView::default()
        };
        for slot in [Slot::Auth, Slot::Sign] {
            if Personalizer::new(&mut ap)
                .read_public_key(slot.key_slot())
                .is_ok()
            {
                view.keys.push(slot);
            }
        }
        if let Ok(der) = ap.read_certificate(KeySlot::Auth.cert_fid()) {
            view.certs.insert(Slot::Auth, der);
        }
        if let Ok(pw) = SigningPassword::new(sign_password) {
            if ap.verify(&pw).is_ok() {
                if let Ok(der) = ap.read_certificate(KeySlot::Sign.cert_fid()) {
                    view.certs.insert(Slot::Sign, der);
                }
            }
        }
        view
    }

    /// What the CA holds for a card, found by the holder query (by card id) and the
    /// store's confirmation flag.
    pub fn ca_view(&self, card: &CardSerial) -> CaView {
        let query = HolderQuery {
            card_id: Some(card.0.clone()),
            ..HolderQuery::default()
        };
        let found = self
            .client()
            .holder_certs(&query, &Transaction::random())
            .expect("holder query answered");
        let db = self.ca.db();
        let certs = found
            .iter()
            .map(|c| {
                let serial =
                    hex::encode_upper(c.certificate.tbs_certificate.serial_number.as_bytes());
                let confirmed: bool = db
                    .query_row(
                        "SELECT confirmed FROM certs WHERE serial = ?1",
                        [&serial],
                        |r| r.get(0),
                    )
                    .unwrap();
                let status = match (c.revoked, confirmed) {
                    (true, _) => CaStatus::Revoked,
                    (false, true) => CaStatus::Live,
                    (false, false) => CaStatus::Unconfirmed,
                };
                let der = c.certificate.to_der().unwrap();
                (slot_of(&c.certificate), der, status)
            })
            .collect();
        CaView { certs }
    }

    /// Card, journal and CA agree, and the audit chain verifies.
    pub fn assert_consistent(&self, records: &[JournalRecord], sign_password: &str) {
        let card = self.card_view(sign_password);
        let ca = self.ca_view(card.serial.as_ref().unwrap());
        let found = reconcile(&card, &LocalView::from_journal(records), &ca);
        assert!(found.is_empty(), "reconcile: {found:?}\ncard {card:?}");
        jpki_kiosk::audit::verify_file(&self.path("audit.db")).expect("audit chain verifies");
    }

    /// (serial, reason) of every revocation in the CA's store.
    pub fn revocations(&self) -> Vec<(String, u32)> {
        let db = self.ca.db();
        let mut st = db
            .prepare("SELECT serial, reason FROM revocations ORDER BY serial")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    }
}

/// The slot a certificate is for, from its policy.
pub fn slot_of(cert: &Certificate) -> Slot {
    jpki_kiosk::issuance::adapters::current_cert(cert)
        .expect("a JPKI certificate")
        .slot
}

/// Serial (upper-case hex) and last day of a DER certificate.
pub fn serial_and_end(der: &[u8]) -> (String, time::Date) {
    let cert = Certificate::from_der(der).unwrap();
    let c = jpki_kiosk::issuance::adapters::current_cert(&cert).unwrap();
    (c.serial, c.not_after)
}

/// The certificates a visit's journal says the CA issued in its own transaction.
pub fn issued_in(records: &[JournalRecord]) -> Vec<(Slot, Vec<u8>)> {
    records
        .iter()
        .find_map(|r| match r {
            JournalRecord::Event {
                event: Event::CaIssued { certs, .. },
                ..
            } => Some(certs.iter().map(|c| (c.slot, c.der.clone())).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The fee on the visit's first receipt, if one was printed.
pub fn receipt_fee(side: &Counterside, visit: &str) -> Option<u64> {
    let text = fs::read_to_string(side.path(&format!("receipt-{visit}-1.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["fee"].as_u64()
}
