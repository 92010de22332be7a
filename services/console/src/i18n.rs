//! Every string the console shows, in English and Spanish. A text is an enum
//! variant, so a page cannot show a string that lacks a translation.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Es,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Self::En),
            "es" => Some(Self::Es),
            _ => None,
        }
    }

    /// The other language, offered by the switch.
    pub fn other(self) -> Self {
        match self {
            Self::En => Self::Es,
            Self::Es => Self::En,
        }
    }
}

macro_rules! texts {
    ($($key:ident => $en:literal, $es:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum T { $($key),* }

        impl T {
            pub fn get(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((T::$key, Lang::En) => $en, (T::$key, Lang::Es) => $es,)*
                }
            }
        }
    };
}

texts! {
    LanguageName => "English", "Español";
    SwitchLanguage => "Español", "English";
    SkipToContent => "Skip to content", "Saltar al contenido";
    Console => "Refer console", "Consola de Refer";
    SignIn => "Sign in", "Iniciar sesión";
    SignInIntro => "Sign in with the token your coalition gave you. It stays on the server; this browser keeps only a session.", "Inicie sesión con el token que le dio su coalición. Se queda en el servidor; este navegador guarda solo una sesión.";
    Token => "Token", "Token";
    WrongToken => "That token is not valid. Check it and try again.", "Ese token no es válido. Revíselo e inténtelo de nuevo.";
    SignInAgain => "This sign-in did not come from this page, or the page had expired. Sign in again here.", "Este inicio de sesión no vino de esta página, o la página había caducado. Inicie sesión de nuevo aquí.";
    TooManyAttempts => "Too many sign-in attempts. Wait a minute and try again.", "Demasiados intentos. Espere un minuto e inténtelo de nuevo.";
    SessionsAway => "The console cannot keep sessions right now. Try again in a moment.", "La consola no puede guardar sesiones ahora. Inténtelo de nuevo en un momento.";
    SignOut => "Sign out", "Cerrar sesión";
    SignedInAs => "Signed in as", "Sesión de";
    RoleIntake => "intake staff", "personal de admisión";
    RoleProvider => "provider partner", "proveedor";
    RoleBusiness => "business", "empresa";
    RoleAdmin => "coalition admin", "administración de la coalición";
    Placements => "Placements", "Colocaciones";
    NewPlacement => "New placement", "Nueva colocación";
    NoPlacements => "No placements yet.", "Todavía no hay colocaciones.";
    HowManyPeople => "How many people", "Cuántas personas";
    ShowForms => "Show the forms", "Mostrar los formularios";
    Person => "Person", "Persona";
    CaseReference => "Your case reference (stays sealed for your agency)", "Su referencia de caso (sellada para su agencia)";
    CaseReferenceShort => "Case reference", "Referencia de caso";
    Needs => "Needs", "Necesidades";
    NeedShelter => "Safe bed tonight", "Cama segura esta noche";
    NeedCounseling => "Counseling", "Consejería";
    NeedMedical => "Medical care", "Atención médica";
    NeedLegal => "Legal help", "Ayuda legal";
    NeedTransport => "Transport", "Transporte";
    NeedAudioVisual => "Audio/video equipment", "Equipo de audio/video";
    Age => "Age", "Edad";
    Adult => "Adult", "Adulto";
    Juvenile => "Under 18", "Menor de 18";
    Gender => "Gender", "Género";
    Female => "Female", "Femenino";
    Male => "Male", "Masculino";
    NonBinary => "Non-binary", "No binario";
    Languages => "Languages spoken", "Idiomas que habla";
    OtherLanguages => "Other languages, by name", "Otros idiomas, por nombre";
    NotALanguage => "“{}” is not a language on the list: tick it above, or type its name in English or Spanish", "«{}» no es un idioma de la lista: márquelo arriba o escriba su nombre en español o en inglés";
    Accessibility => "Accessibility", "Accesibilidad";
    Wheelchair => "Wheelchair access", "Acceso para silla de ruedas";
    SignLanguage => "Sign language", "Lengua de señas";
    VisualImpairment => "Visual impairment", "Discapacidad visual";
    ServiceAnimal => "Service animal", "Animal de servicio";
    PartySize => "Party size (with children)", "Tamaño del grupo (con hijos)";
    Urgency => "Urgency", "Urgencia";
    Immediate => "Tonight", "Esta noche";
    Soon => "Within days", "En unos días";
    Routine => "Routine", "Rutina";
    WhereNow => "Where they are now", "Dónde están ahora";
    Place => "A place of the coalition", "Un lugar de la coalición";
    PlaceHint => "Type a city or county", "Escriba una ciudad o un condado";
    CurrentLocation => "Current location", "Ubicación actual";
    UseMyLocation => "Use my current location", "Usar mi ubicación actual";
    LocationRefused => "This phone did not give its location (it was refused or not found). Type the place instead.", "Este teléfono no dio su ubicación (se negó o no se encontró). Escriba el lugar.";
    PlaceMissing => "pick a place from the list, or use your current location", "elija un lugar de la lista o use su ubicación actual";
    PlaceUnknown => "“{}” is not a place of the coalition: pick one from the list, or use your current location", "«{}» no es un lugar de la coalición: elija uno de la lista o use su ubicación actual";
    MaxKm => "How far they may go (km)", "Qué tan lejos pueden ir (km)";
    Avoid => "Counties to keep them out of", "Condados que deben evitar";
    County => "County", "Condado";
    Together => "Place them", "Colocarlos";
    EitherWay => "either way", "como sea";
    KeepTogether => "together", "juntos";
    KeepApart => "apart", "separados";
    RequestPlacement => "Request placement", "Solicitar colocación";
    Requested => "Requested. Each need's status changes here as providers answer.", "Solicitado. El estado de cada necesidad cambia aquí cuando responden los proveedores.";
    StatusRequested => "Looking", "Buscando";
    StatusProposed => "Offered, awaiting answer", "Ofrecido, esperando respuesta";
    StatusAccepted => "Accepted", "Aceptado";
    StatusDeclined => "Declined, looking again", "Rechazado, buscando de nuevo";
    StatusExpired => "No answer, looking again", "Sin respuesta, buscando de nuevo";
    StatusWaitlisted => "Waitlisted", "En lista de espera";
    StatusCancelled => "Cancelled", "Cancelado";
    StatusFulfilled => "Done", "Completado";
    AnswerDue => "answer due", "respuesta antes de";
    WaitsNear => "waits for capacity near", "espera capacidad cerca de";
    HeldForUrgent => "beds kept for more urgent cases; matched at the latest at", "camas reservadas para casos más urgentes; se asigna a más tardar a las";
    BringTo => "Bring them to", "Llévelos a";
    HandoffErased => "Hand-off erased", "Entrega borrada";
    WhatHappened => "What happened", "Qué pasó";
    HandoffPending => "no hand-off given yet: call the coalition's duty officer", "aún no hay entrega: llame al responsable de guardia de la coalición";
    HandoffFor => "Hand-off for", "Entrega para";
    DonatedHotelRoom => "a donated hotel room", "una habitación de hotel donada";
    DonatedVehicle => "a donated vehicle with a driver", "un vehículo donado con conductor";
    DonatedRentalCar => "a donated rental car", "un auto de alquiler donado";
    DonatedAudioVisual => "donated audio/video equipment", "equipo de audio y video donado";
    Cancel => "Cancel", "Cancelar";
    CancelAsk => "Cancel this request?", "¿Cancelar esta solicitud?";
    CancelMeans => "The provider's referral is withdrawn and any bed or place held for this person is released to others. A cancelled request cannot be reopened: a new request starts again.", "Se retira la derivación al proveedor y se libera para otras personas cualquier cama o lugar reservado para esta persona. Una solicitud cancelada no se puede reabrir: una nueva solicitud empieza de nuevo.";
    CancelYes => "Yes, cancel the request", "Sí, cancelar la solicitud";
    CancelKeep => "No, keep it", "No, mantenerla";
    NothingToCancel => "This request cannot be cancelled any more", "Esta solicitud ya no se puede cancelar";
    BackToPlacements => "Back to the placements", "Volver a las colocaciones";
    Actions => "Actions", "Acciones";
    Arrived => "Arrived", "Llegó";
    Need => "Need", "Necesidad";
    Status => "Status", "Estado";
    Detail => "Detail", "Detalle";
    Case => "Case", "Caso";
    ServiceDown => "is not answering. Your form is kept; try again in a moment.", "no responde. Su formulario se conserva; inténtelo de nuevo en un momento.";
    TheService => "The service", "El servicio";
    CouldNot => "Could not do that:", "No se pudo hacer:";
    NotFound => "Not found.", "No encontrado.";
    Forbidden => "This page is not for your account.", "Esta página no es para su cuenta.";
    Sites => "Your sites", "Sus sitios";
    NoSites => "No sites registered.", "No hay sitios registrados.";
    Capacity => "Capacity", "Capacidad";
    Free => "free now", "libres ahora";
    Held => "held", "reservadas";
    PlacedUnits => "in use", "en uso";
    AddOne => "Add one", "Agregar uno";
    RemoveOne => "Remove one", "Quitar uno";
    Set => "Set", "Fijar";
    Declared => "Places in all (free, held and in use)", "Plazas en total (libres, reservadas y en uso)";
    AsOf => "as of", "al";
    Stale => "stale", "desactualizada";
    UnknownAge => "age unknown", "edad desconocida";
    StaleReminder => "Some of your capacity is older than the coalition's freshness limit. Confirm it: set each count again, even unchanged, so intake and the matcher can trust it.", "Parte de su capacidad es más antigua que el límite de actualidad de la coalición. Confírmela: fije cada cantidad de nuevo, aunque no cambie, para que la admisión y el asignador puedan confiar en ella.";
    Offered => "offered", "ofrecida";
    Referrals => "Referrals waiting for your answer", "Referencias esperando su respuesta";
    NoReferrals => "No referrals waiting.", "No hay referencias esperando.";
    AcceptedReferrals => "Accepted", "Aceptadas";
    AnswerWithin => "Answer by", "Responda antes de";
    Accept => "Accept", "Aceptar";
    Decline => "Decline", "Rechazar";
    HandoffInstructions => "Hand-off: where to bring the person, who meets them, a phone (blank: your site's default)", "Entrega: adónde llevar a la persona, quién la recibe, un teléfono (en blanco: la predeterminada del sitio)";
    Reason => "Reason", "Motivo";
    NoCapacity => "No room after all", "Ya no hay lugar";
    NotEligible => "Not eligible", "No cumple los requisitos";
    SafetyConcern => "Safety concern", "Riesgo de seguridad";
    Other => "Other", "Otro";
    Suspend => "Suspend referrals", "Suspender referencias";
    Resume => "Resume referrals", "Reanudar referencias";
    Suspended => "suspended", "suspendido";
    AgencyContact => "Agency contact", "Contacto de la agencia";
    Note => "Note", "Nota";
    ServiceShelterBed => "Beds", "Camas";
    ServiceCounseling => "Counseling", "Consejería";
    ServiceMedical => "Medical", "Médica";
    ServiceLegal => "Legal", "Legal";
    Party => "Party of", "Grupo de";
    GroupOf => "Recovered together: a group of", "Rescatados juntos: un grupo de";
    People => "people", "personas";
    Saved => "Saved.", "Guardado.";
    Donations => "Your donations", "Sus donaciones";
    NewDonation => "New donation", "Nueva donación";
    NoDonations => "No donations yet.", "Todavía no hay donaciones.";
    Kind => "What", "Qué";
    HotelRoomNights => "Hotel room-nights", "Noches de hotel";
    Vehicle => "Vehicle with a driver", "Vehículo con conductor";
    RentalCar => "Rental car", "Auto de alquiler";
    Quantity => "How many units", "Cuántas unidades";
    StartsInHours => "Available from (hours from now)", "Disponible desde (horas a partir de ahora)";
    EndsInHours => "Available until (hours from now)", "Disponible hasta (horas a partir de ahora)";
    MaxPerPerson => "At most for one person (0: no limit)", "Máximo para una persona (0: sin límite)";
    WhereDonation => "Where it is", "Dónde está";
    RegisterDonation => "Register donation", "Registrar donación";
    Withdrawn => "withdrawn", "retirada";
    Withdraw => "Withdraw", "Retirar";
    From => "From", "Desde";
    Until => "until", "hasta";
    UsedWhen => "Used (never by whom)", "Usado (nunca por quién)";
    DonationHandoff => "Hand-off: front desk, keys, a phone (shown only to an agency whose need this serves)", "Entrega: recepción, llaves, un teléfono (solo la ve una agencia a la que esto sirve)";
    Save => "Save", "Guardar";
    EditHandoff => "Hand-off", "Entrega";
    BackToDonations => "Back to the donations", "Volver a las donaciones";
    Coalition => "The coalition tonight", "La coalición esta noche";
    Unplaced => "Needs still to place", "Necesidades por colocar";
    AcceptedNeeds => "Needs accepted", "Necesidades aceptadas";
    PendingReferrals => "Referrals awaiting an answer", "Referencias esperando respuesta";
    SitesCount => "Provider sites", "Sitios de proveedores";
    DonationsCount => "Donations", "Donaciones";
    Waitlist => "Waitlist by need and region", "Lista de espera por necesidad y región";
    NoWaitlist => "Nobody is waitlisted.", "Nadie está en lista de espera.";
    Count => "People", "Personas";
    Partners => "Partners and their tokens", "Socios y sus tokens";
    NoTokenFile => "The console has no token file (tokens_file): add partners with refer admin add-partner.", "La consola no tiene archivo de tokens (tokens_file): agregue socios con refer admin add-partner.";
    Name => "Name", "Nombre";
    RoleLabel => "Role", "Rol";
    Organisation => "Organisation", "Organización";
    OrganisationOptional => "Of which organisation", "De qué organización";
    NewOrganisation => "A new organisation", "Una organización nueva";
    AddPartner => "Add a partner", "Agregar un socio";
    TimeToAccept => "Time from request to acceptance (minutes)", "Tiempo de la solicitud a la aceptación (minutos)";
    NothingTimed => "No acceptance timed yet.", "Todavía no hay aceptaciones medidas.";
    Median => "Median", "Mediana";
    NinetyPercent => "9 in 10 within", "9 de cada 10 en";
    Acceptances => "acceptances timed", "aceptaciones medidas";
    Reports => "Reports", "Informes";
    FirstMonth => "First month", "Primer mes";
    LastMonth => "Last month", "Último mes";
    FirstMonthNeeded => "choose the first month too", "elija también el primer mes";
    MonthsHint => "Whole months; blank: this month.", "Meses completos; en blanco: este mes.";
    PublishOnly => "Only what may be published (small counts hidden)", "Solo lo que puede publicarse (cifras pequeñas ocultas)";
    ShowReport => "Show the report", "Mostrar el informe";
    TheCoalition => "the whole coalition", "toda la coalición";
    YourOrganisation => "your organisation", "su organización";
    RawNotice => "Exact counts, for the coalition's own eyes: do not share them outside it. Tick \"Only what may be published\" for figures that may leave it.", "Cifras exactas, solo para la coalición: no las comparta fuera de ella. Marque \"Solo lo que puede publicarse\" para cifras que pueden salir de ella.";
    PublishedNotice => "Only what may be published: counts under 5 show as \"< 5\", and figures that would give one away, or that come from fewer than 3 providers, as \"suppressed\".", "Solo lo que puede publicarse: las cifras menores de 5 aparecen como \"< 5\", y las que revelarían una, o que vienen de menos de 3 proveedores, como \"suppressed\".";
    UnmetNeed => "Unmet need", "Necesidades no cubiertas";
    NoUnmetNeed => "No unmet need in this period.", "No hay necesidades sin cubrir en este periodo.";
    UnmetByKind => "Unmet need by kind (people)", "Necesidades no cubiertas por tipo (personas)";
    UnmetByRegion => "Unmet need by region (people)", "Necesidades no cubiertas por región (personas)";
    Hidden => "hidden", "oculto";
    ResponseTimes => "Response times", "Tiempos de respuesta";
    MedianMinutesTo => "Median minutes, month by month, from request to", "Mediana en minutos, mes a mes, de la solicitud a la";
    Withheld => "too few to show", "muy pocos para mostrar";
    Delay => "From request to", "De la solicitud a";
    ToFirstProposal => "first proposal", "primera propuesta";
    ToAcceptance => "acceptance", "aceptación";
    ProvidersActive => "Providers active", "Proveedores activos";
    BusinessesActive => "Businesses active", "Empresas activas";
    Total => "total", "total";
    TokenOnce => "Give this token to the partner now; it is shown only this once:", "Entregue este token al socio ahora; solo se muestra esta vez:";
}
