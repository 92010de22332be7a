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
    TooManyAttempts => "Too many sign-in attempts. Wait a minute and try again.", "Demasiados intentos. Espere un minuto e inténtelo de nuevo.";
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
    Languages => "Languages spoken (codes, comma-separated: en, es)", "Idiomas que habla (códigos separados por comas: en, es)";
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
    Coordinates => "Or coordinates (lat,lon), with the region code", "O coordenadas (lat,lon), con el código de región";
    RegionCode => "Region code", "Código de región";
    MaxKm => "How far they may go (km)", "Qué tan lejos pueden ir (km)";
    Avoid => "Regions to keep them out of (codes, comma-separated)", "Regiones que deben evitar (códigos separados por comas)";
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
    BringTo => "Bring them to", "Llévelos a";
    HandoffErased => "Hand-off erased", "Entrega borrada";
    Cancel => "Cancel", "Cancelar";
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
    Free => "free", "libres";
    Held => "held", "reservadas";
    PlacedUnits => "in use", "en uso";
    AddOne => "Add one", "Agregar uno";
    RemoveOne => "Remove one", "Quitar uno";
    Set => "Set", "Fijar";
    Declared => "Declared", "Declaradas";
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
    Saved => "Saved.", "Guardado.";
}
