"""Short Moroccan procedure sheets (Arabic and French) and one secret report, for search tests."""

from __future__ import annotations

from manara.search.ingest import TextDocument

DOCS = [
    TextDocument(
        "cin-ar",
        "تجديد البطاقة الوطنية للتعريف الإلكترونية يتم في مركز التسجيل التابع لمحل السكنى.\n\n"
        "الوثائق المطلوبة: البطاقة القديمة، صورتان شمسيتان حديثتان، وشهادة السكنى عند تغيير العنوان.\n\n"
        "رسوم التجديد 75 درهما تؤدى بواسطة تنبر إلكتروني. مدة الإنجاز حوالي أسبوعين.",
        "تجديد البطاقة الوطنية",
        "ar",
    ),
    TextDocument(
        "passeport-fr",
        "Passeport biométrique : la demande se fait auprès de la préfecture ou du consulat.\n\n"
        "Pièces à fournir : la carte nationale, une photo d'identité récente et le timbre fiscal de 500 dirhams.\n\n"
        "Le passeport est délivré dans un délai de deux semaines et reste valable cinq ans.",
        "Demande de passeport",
        "fr",
    ),
    TextDocument(
        "naissance-ar",
        "يسلم مكتب الحالة المدنية نسخة موجزة من رسم الولادة لكل شخص مسجل في سجلات الحالة المدنية.\n\n"
        "يكفي الإدلاء بالدفتر العائلي أو رقم البطاقة الوطنية. الخدمة مجانية.",
        "عقد الازدياد",
        "ar",
    ),
    TextDocument(
        "tva-fr",
        "Déclaration de la TVA : toute entreprise assujettie dépose sa déclaration mensuelle ou trimestrielle "
        "en ligne sur le portail de la Direction générale des impôts.\n\n"
        "Le paiement de la taxe sur la valeur ajoutée accompagne la déclaration, avant la fin du mois suivant.",
        "Déclaration de TVA",
        "fr",
    ),
    TextDocument(
        "permis-fr",
        "Permis de conduire : l'examen théorique et l'examen pratique se passent au centre d'immatriculation.\n\n"
        "En cas de perte, une déclaration à la police permet de demander un duplicata du permis.",
        "Permis de conduire",
        "fr",
    ),
]

SECRET_DOC = TextDocument(
    "enquete-secret",
    "Rapport confidentiel : liste des agents chargés de l'enquête sur la fraude au passeport biométrique, "
    "avec leurs numéros de téléphone personnels.",
    "Rapport d'enquête",
    "fr",
)
